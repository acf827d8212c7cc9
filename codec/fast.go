package codec

import "unicode/utf8"

// decodeCommon decodes the common form of a record: a JSON object whose
// only members are "picture_id" with a string without escapes and "weight"
// with an integer literal, in either order, with any JSON white space. ok is
// false for anything else, which the general path then decodes. The
// picture id's string comes from ids (nil: a new one).
func decodeCommon(data []byte, ids *Decoder) (r Registration, err error, ok bool) {
	s := scanner{b: data}
	s.ws()
	if !s.eat('{') {
		return r, nil, false
	}
	var id, weight []byte
	for {
		s.ws()
		key, ok := s.plainString()
		if !ok {
			return r, nil, false
		}
		s.ws()
		if !s.eat(':') {
			return r, nil, false
		}
		s.ws()
		switch string(key) {
		case "picture_id":
			if id != nil {
				return r, nil, false // a repeated member: leave it to encoding/json's rules
			}
			if id, ok = s.plainString(); !ok {
				return r, nil, false
			}
		case "weight":
			if weight != nil {
				return r, nil, false
			}
			if weight, ok = s.integer(); !ok {
				return r, nil, false
			}
		default:
			return r, nil, false
		}
		s.ws()
		if s.eat('}') {
			break
		}
		if !s.eat(',') {
			return r, nil, false
		}
	}
	s.ws()
	if s.i != len(s.b) || id == nil || weight == nil || !utf8.Valid(id) {
		return r, nil, false
	}
	// The same checks, in the same order, as the general path.
	pid := ids.id(id)
	if err := checkID(pid); err != nil {
		return r, err, true
	}
	w, err := parseWeight(weight)
	if err != nil {
		return r, err, true
	}
	return Registration{PictureID: pid, Weight: w}, nil, true
}

type scanner struct {
	b []byte
	i int
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) eat(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// plainString reads a JSON string that has no escapes and no control
// characters, and returns its bytes.
func (s *scanner) plainString() ([]byte, bool) {
	if !s.eat('"') {
		return nil, false
	}
	start := s.i
	for s.i < len(s.b) {
		switch c := s.b[s.i]; {
		case c == '"':
			s.i++
			return s.b[start : s.i-1 : s.i-1], true
		case c == '\\' || c < 0x20:
			return nil, false
		}
		s.i++
	}
	return nil, false
}

// integer reads a JSON number that is an integer literal: an optional minus
// and digits without a leading zero.
func (s *scanner) integer() ([]byte, bool) {
	start := s.i
	s.eat('-')
	digits := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	n := s.i - digits
	if n == 0 || (n > 1 && s.b[digits] == '0') {
		return nil, false
	}
	if s.i < len(s.b) {
		switch s.b[s.i] {
		case '.', 'e', 'E':
			return nil, false
		}
	}
	return s.b[start:s.i], true
}
