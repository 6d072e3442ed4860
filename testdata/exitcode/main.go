// exitcode does some map work and leaves through os.Exit(3): the tracer must report the
// status unchanged and flush its output even though no deferred code runs.
package main

import (
	"fmt"
	"os"
)

var m map[string]int

func main() {
	m = make(map[string]int)
	for i := 0; i < 20; i++ {
		m[fmt.Sprint("k", i)] = i
	}
	fmt.Printf("len=%d\n", len(m))
	os.Exit(3)
}
