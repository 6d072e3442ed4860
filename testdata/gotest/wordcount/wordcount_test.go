package wordcount

import (
	"fmt"
	"os"
	"testing"
)

func TestCount(t *testing.T) {
	var words []string
	for i := 0; i < 200; i++ {
		words = append(words, fmt.Sprintf("w%d", i%150))
	}
	c := Count(words)
	if len(c) != 150 || c["w0"] != 2 {
		t.Fatalf("got %d words, w0=%d", len(c), c["w0"])
	}
	fmt.Printf("wordcount: %d distinct words\n", len(c)) // on the test binary's stdout
	if os.Getenv("WORDCOUNT_FAIL") == "1" {
		t.Fatal("asked to fail") // a failing test must stay failed under gomaptrace
	}
}
