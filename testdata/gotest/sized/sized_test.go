package sized

import (
	"fmt"
	"testing"
)

func TestIndex(t *testing.T) {
	m := Index(500)
	if len(m) != 500 || m[7] != 49 {
		t.Fatalf("got %d keys, m[7]=%d", len(m), m[7])
	}
	fmt.Printf("sized: %d keys\n", len(m))
}
