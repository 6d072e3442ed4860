// makehints makes maps of every key kind with the hints whose bucket counts (classic) or
// table sizes (swiss) the tracer must report, so tests can compare the tracer's hint and
// length with the lines printed here. Every map escapes into a global, so the compiler
// must call the runtime; the hint reaches make() as a variable (mk* are never inlined), so
// each map is one runtime.makemap call, never makemap_small.
//
// The process makes more maps than it prints: package init (unicode's tables in Go 1.19 to
// 1.23) calls makemap too. A test that needs a known count compares two runs with different
// rounds: the difference is exactly the difference of the printed counts.
//
// Usage: makehints [hint [rounds]]   (defaults 100 and 1)
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

func atoi(s string) int {
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 {
		fmt.Fprintf(os.Stderr, "usage: makehints [hint [rounds]]\n")
		os.Exit(2)
	}
	return v
}

func main() {
	extra, rounds := 100, 1
	if len(os.Args) > 1 {
		extra = atoi(os.Args[1])
	}
	if len(os.Args) > 2 {
		rounds = atoi(os.Args[2])
	}
	hints := []int{0, 1, 8, 9, 13, 14, 27, 1024, extra}
	made := 0
	for r := 0; r < rounds; r++ {
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
	}
	fmt.Printf("maps=%d inserts=%d\n", made, made*inserts)
}
