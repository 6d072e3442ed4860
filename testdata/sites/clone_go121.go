//go:build go1.21
// +build go1.21

package main

import "maps"

// cloned copies the nohint map with maps.Clone (Go 1.21+) and adds as many keys again, so the
// copy grows. Classic runtimes make the copy with makemap, Swiss ones from 1.25 with
// (*Map).Clone and no makemap: either way it is a map made at this line, not in package
// maps, and since maps.Clone takes no size hint the advice must say so.
//
//go:noinline
func cloned(m map[int]int) int {
	c := maps.Clone(m)
	for i := keys; i < 2*keys; i++ {
		c[i] = i
	}
	sink = append(sink, c)
	return len(c)
}
