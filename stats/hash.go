package stats

// idHash is the 64-bit hash of a picture id by which the picture statistics
// bound their memory: FNV-1a, then splitmix64's finaliser so that every
// output bit depends on every input byte (HyperLogLog reads the top bits).
// Stored aggregates depend on it: changing it needs a version bump of every
// statistic that uses it.
func idHash(id string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(id); i++ {
		h ^= uint64(id[i])
		h *= 1099511628211
	}
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}
