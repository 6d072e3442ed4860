// cgo: a Go program linked the way many shipped ones are, with cgo: the external linker,
// dynamically linked against libc, C code called from Go, and the net package's cgo
// resolver. The tracer must read it and count its map calls like any other. Prints how many
// keys it inserted, so a test can compare traced and untraced output.
package main

/*
static int twice(int x) { return 2 * x; }
*/
import "C"

import (
	"fmt"
	"net"
)

var sink map[string]int

func main() {
	m := make(map[string]int)
	for i := 0; i < 1000; i++ {
		m[fmt.Sprint(i)] = int(C.twice(C.int(i)))
	}
	sink = m
	_, err := net.LookupHost("localhost")
	fmt.Println("keys", len(m), "lookup ok", err == nil)
}
