// noescape fills a map that never leaves its function, so the compiler builds it on the
// stack with no runtime.makemap call (the tracer must not invent one); its inserts and
// growth still go through the runtime.
package main

import "fmt"

//go:noinline
func sum(n int) (int, int) {
	m := make(map[int]int)
	for i := 0; i < n; i++ {
		m[i] = i * 2
	}
	s := 0
	for _, v := range m {
		s += v
	}
	return s, len(m)
}

func main() {
	s, l := sum(100)
	fmt.Printf("sum=%d len=%d\n", s, l)
}
