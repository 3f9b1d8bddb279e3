package diffid

import "testing"

// TestCodesMatchC: the Go codes, their names and their sentinels are the C library's.
func TestCodesMatchC(t *testing.T) {
	for c := CodeOK; c <= CodeDigestMismatch; c++ {
		if got := c.cName(); got != c.String() || got == "" {
			t.Errorf("code %d: C name %q, Go name %q", uint32(c), got, c.String())
		}
		if (c.Sentinel() == nil) != (c == CodeOK) {
			t.Errorf("code %d: sentinel %v", uint32(c), c.Sentinel())
		}
	}
	if got := Code(13).cName(); got != "" {
		t.Errorf("code 13 has a C name %q: a new code needs a Go constant and sentinel", got)
	}
	if Code(13).Sentinel() != nil || Code(13).String() != "code(13)" {
		t.Errorf("unknown code: %v %q", Code(13).Sentinel(), Code(13).String())
	}
}
