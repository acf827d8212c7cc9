package datafeed

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/picstats/picstats/codec"
)

func TestPicturesAreTheRepositorysImages(t *testing.T) {
	ids, err := Pictures("../images")
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 100 {
		t.Fatalf("found %d pictures in ../images, want 100", len(ids))
	}
	for _, id := range ids {
		if _, err := os.Stat(filepath.Join("../images", id+".jpg")); err != nil {
			t.Errorf("id %s does not name a picture: %v", id, err)
		}
	}
}

func TestRecordsAreValidSkeletonRegistrations(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	pictures := []string{"000000243626", "000000460347"}
	seen := map[int64]bool{}
	for range 20000 {
		k, v := Record(rng, pictures, KeyPictureID)
		reg, err := codec.Decode(v)
		if err != nil {
			t.Fatalf("feed produced an invalid record %s: %v", v, err)
		}
		if reg.Weight < MinWeight || reg.Weight >= MaxWeight {
			t.Fatalf("weight %d outside [%d, %d)", reg.Weight, MinWeight, MaxWeight)
		}
		if string(k) != reg.PictureID {
			t.Fatalf("key %q, want the picture id %q", k, reg.PictureID)
		}
		seen[reg.Weight] = true
	}
	if !seen[MinWeight] || !seen[MaxWeight-1] {
		t.Errorf("20000 draws never hit the bounds %d and %d: not uniform over the whole range", MinWeight, MaxWeight-1)
	}
	if k, _ := Record(rng, pictures, KeyNone); k != nil {
		t.Errorf("key %q with --key none, want a null key", k)
	}
}

func TestNoPicturesSendsNullLikeTheSkeleton(t *testing.T) {
	_, v := Record(rand.New(rand.NewPCG(1, 2)), nil, KeyNone)
	if r, _ := codec.ReasonOf(must(codec.Decode(v))); r != codec.ReasonMissingPictureID {
		t.Fatalf("record %s: reason %q, want %s", v, r, codec.ReasonMissingPictureID)
	}
}

func must(_ codec.Registration, err error) error { return err }

func TestParseKey(t *testing.T) {
	for in, ok := range map[string]bool{"none": true, "picture_id": true, "": false, "id": false} {
		if _, err := ParseKey(in); (err == nil) != ok {
			t.Errorf("ParseKey(%q) error = %v", in, err)
		}
	}
}
