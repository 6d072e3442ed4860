// jsonmaps makes maps the way libraries do, through reflect: encoding/json decodes N JSON
// objects into []map[string]interface{} (one reflect.MakeMap each), then reflect.MakeMap
// makes N more map[string]int. From Go 1.24 runtime.makemap is inlined into reflect.makemap,
// so these maps are seen created only if the tracer probes inlined copies too.
//
// It prints the number of maps it made this way, so tests can compare creation counts.
//
// Usage: jsonmaps [n]   (default 100)
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
)

var kept []reflect.Value

func main() {
	n := 100
	if len(os.Args) > 1 {
		v, err := strconv.Atoi(os.Args[1])
		if err != nil || v < 0 {
			fmt.Fprintln(os.Stderr, "usage: jsonmaps [n]")
			os.Exit(2)
		}
		n = v
	}
	var sb strings.Builder
	sb.WriteByte('[')
	for i := 0; i < n; i++ {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"id":%d,"name":"n%d","tags":["a","b"]}`, i, i)
	}
	sb.WriteByte(']')
	var decoded []map[string]interface{}
	if err := json.Unmarshal([]byte(sb.String()), &decoded); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	t := reflect.TypeOf(map[string]int{})
	for i := 0; i < n; i++ {
		m := reflect.MakeMap(t)
		m.SetMapIndex(reflect.ValueOf("k"), reflect.ValueOf(i))
		kept = append(kept, m)
	}
	fmt.Printf("decoded %d maps, made %d maps\n", len(decoded), len(kept))
}
