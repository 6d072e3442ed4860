// panics does map work and then panics: exit status 2 and the panic text on stderr must
// come through the tracer unchanged.
package main

import "fmt"

var m map[int]string

func main() {
	m = make(map[int]string)
	for i := 0; i < 20; i++ {
		m[i] = fmt.Sprint(i)
	}
	fmt.Printf("len=%d\n", len(m))
	panic("boom")
}
