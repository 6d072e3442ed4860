// sites makes maps in each way the per-site summary must tell apart, each filled with 1000
// keys, so a test can check every site's kind, maps, grows and advice:
//   - literal: `map[int]int{}` that does not escape: the compiler makes it with no runtime
//     call; called twice, the second map sits at the same stack address as the first;
//   - presized: make(map[int]int, 1000) that escapes: makemap, never grows;
//   - nohint: make(map[int]int) that escapes: makemap_small, grows;
//   - cloned (Go 1.21+): maps.Clone of the nohint map plus 1000 more keys: made, grows, and
//     the advice says that maps.Clone takes no hint;
//   - early: made before anything else; with the argument "wait" the program then waits for
//     one line (or EOF) on stdin before filling it, so a tracer can attach after it was made.
//
// 1000 keys from empty grow a map 8 times with either implementation: classic B 0→8 (grows
// at the 9th, 14th, 27th, 53rd, 105th, 209th, 417th and 833rd insert: count > 6.5·2^B);
// Swiss growToTable at the 9th, capacity 16→1024 in 6 doublings, then one split at the
// 897th (a full 1024-slot table splits in two).
package main

import (
	"bufio"
	"fmt"
	"os"
)

const keys = 1000

var sink []map[int]int

//go:noinline
func literal() int {
	m := map[int]int{}
	for i := 0; i < keys; i++ {
		m[i] = i
	}
	return len(m)
}

//go:noinline
func presized() {
	m := make(map[int]int, keys)
	for i := 0; i < keys; i++ {
		m[i] = i
	}
	sink = append(sink, m)
}

//go:noinline
func nohint() {
	m := make(map[int]int)
	for i := 0; i < keys; i++ {
		m[i] = i
	}
	sink = append(sink, m)
}

//go:noinline
func fill(m map[int]int) {
	for i := 0; i < keys; i++ {
		m[i] = i
	}
}

//go:noinline
func makeEarly() map[int]int {
	m := make(map[int]int)
	sink = append(sink, m)
	return m
}

func main() {
	early := makeEarly()
	fmt.Println("ready")
	if len(os.Args) > 1 && os.Args[1] == "wait" {
		bufio.NewReader(os.Stdin).ReadString('\n')
	}
	fill(early)
	a, b := literal(), literal()
	presized()
	nohint()
	c := cloned(sink[2])
	fmt.Printf("literal=%d,%d presized=%d nohint=%d early=%d cloned=%d\n", a, b, len(sink[1]), len(sink[2]), len(early), c)
}
