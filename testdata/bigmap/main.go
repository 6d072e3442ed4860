// bigmap grows one map from empty to 100000 entries: many grows (classic: hashGrow and
// incremental evacuation; swiss: growToSmall, growToTable, table grows and splits).
package main

import "fmt"

var big map[int]int

func main() {
	big = make(map[int]int)
	for i := 0; i < 100000; i++ {
		big[i] = i
	}
	fmt.Printf("len=%d\n", len(big))
}
