// makehints makes maps of every key kind with the hints whose bucket counts (classic) or
// table sizes (swiss) the tracer must report, so tests can compare the tracer's hint and
// length with the lines printed here. Every map escapes into a global, so the compiler
// must call the runtime; the hint reaches make() as a variable (mk* are never inlined), so
// each map is one runtime.makemap call, never makemap_small.
package main

import (
	"fmt"
	"os"
	"strconv"
)

type point struct {
	x, y int32
	tag  string
}

var (
	intMaps    []map[int]int
	stringMaps []map[string]int
	structMaps []map[point]int
)

// Inserts per map: few enough that no hint ≥ 1 grows, so a test sees makemap alone decide
// the size; hint 0 and 1 still get buckets (classic) or a group (swiss) on the first insert.
const inserts = 3

//go:noinline
func mkInt(h int) map[int]int {
	m := make(map[int]int, h)
	intMaps = append(intMaps, m)
	return m
}

//go:noinline
func mkString(h int) map[string]int {
	m := make(map[string]int, h)
	stringMaps = append(stringMaps, m)
	return m
}

//go:noinline
func mkStruct(h int) map[point]int {
	m := make(map[point]int, h)
	structMaps = append(structMaps, m)
	return m
}

func main() {
	extra := 100
	if len(os.Args) > 1 {
		v, err := strconv.Atoi(os.Args[1])
		if err != nil || v < 0 {
			fmt.Fprintf(os.Stderr, "usage: makehints [hint>=0]\n")
			os.Exit(2)
		}
		extra = v
	}
	hints := []int{0, 1, 8, 9, 13, 14, 27, 1024, extra}
	made := 0
	for _, h := range hints {
		m := mkInt(h)
		for i := 0; i < inserts; i++ {
			m[i] = i
		}
		fmt.Printf("kind=int hint=%d len=%d\n", h, len(m))
		made++
	}
	for _, h := range hints {
		m := mkString(h)
		for i := 0; i < inserts; i++ {
			m["k"+strconv.Itoa(i)] = i
		}
		fmt.Printf("kind=string hint=%d len=%d\n", h, len(m))
		made++
	}
	for _, h := range hints {
		m := mkStruct(h)
		for i := 0; i < inserts; i++ {
			m[point{int32(i), int32(-i), "p"}] = i
		}
		fmt.Printf("kind=struct hint=%d len=%d\n", h, len(m))
		made++
	}
	fmt.Printf("maps=%d inserts=%d\n", made, made*inserts)
}
