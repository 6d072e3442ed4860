// expectdemo does map work whose size its arguments decide, for --expect tests: a test
// knows from the arguments alone how many maps the program's own functions make and how
// many keys they insert (every map escapes and every hint is a variable, so each make is one
// runtime.makemap call and each m[k] = v one mapassign call).
//
//	main.makeMaps   makes MAPS maps of type map[string]int (hint 4), one insert each
//	main.fill       inserts INSERTS keys into one map[int]int made with no hint: it grows
//	main.fillHinted inserts INSERTS keys into a map[int64]int64 sized for them: no growth
//	main.leaf       makes one map[uint16]bool DEPTH frames below main.main (main.deep)
//
// TOUCH (unless "-") is created first thing, so a test can tell whether the program ran.
// The program exits with status EXIT after printing what it did.
//
// Usage: expectdemo MAPS INSERTS DEPTH TOUCH EXIT
package main

import (
	"fmt"
	"os"
	"strconv"
)

var keep []interface{}

//go:noinline
func makeMaps(n, hint int) {
	for i := 0; i < n; i++ {
		m := make(map[string]int, hint)
		m[strconv.Itoa(i)] = i
		keep = append(keep, m)
	}
}

//go:noinline
func fill(n int) {
	m := make(map[int]int)
	for i := 0; i < n; i++ {
		m[i] = i
	}
	keep = append(keep, m)
}

//go:noinline
func fillHinted(n int) {
	m := make(map[int64]int64, n)
	for i := 0; i < n; i++ {
		m[int64(i)] = int64(i)
	}
	keep = append(keep, m)
}

//go:noinline
func leaf(hint int) {
	m := make(map[uint16]bool, hint)
	m[1] = true
	keep = append(keep, m)
}

//go:noinline
func deep(depth, hint int) {
	if depth <= 1 {
		leaf(hint)
		return
	}
	deep(depth-1, hint)
}

func main() {
	if len(os.Args) != 6 {
		fmt.Fprintln(os.Stderr, "usage: expectdemo MAPS INSERTS DEPTH TOUCH EXIT")
		os.Exit(2)
	}
	arg := func(i int) int {
		n, err := strconv.Atoi(os.Args[i])
		if err != nil {
			fmt.Fprintln(os.Stderr, "expectdemo:", err)
			os.Exit(2)
		}
		return n
	}
	if touch := os.Args[4]; touch != "-" {
		if err := os.WriteFile(touch, []byte("ran\n"), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "expectdemo:", err)
			os.Exit(2)
		}
	}
	maps, inserts, depth, exit := arg(1), arg(2), arg(3), arg(5)
	makeMaps(maps, 4)
	fill(inserts)
	fillHinted(inserts)
	deep(depth, 4)
	fmt.Printf("expectdemo maps=%d inserts=%d depth=%d\n", maps, inserts, depth)
	os.Exit(exit)
}
