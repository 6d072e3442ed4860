// smallmaps: N small maps of 3 entries each that escape to the heap, so every map costs a
// makemap_small call (plus, for Swiss maps, its first group) and three inserts.
package main

import (
	"fmt"
	"os"
	"strconv"
)

var sink []map[int]int

func main() {
	n := 10000
	if len(os.Args) > 1 {
		v, err := strconv.Atoi(os.Args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, "usage: smallmaps [N]")
			os.Exit(2)
		}
		n = v
	}
	sink = make([]map[int]int, 0, n)
	for i := 0; i < n; i++ {
		m := make(map[int]int)
		m[i] = 1
		m[i+1] = 2
		m[i+2] = 3
		sink = append(sink, m)
	}
	total := 0
	for _, m := range sink {
		total += len(m)
	}
	fmt.Println(total)
}
