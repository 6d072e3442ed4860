module gomaptrace/tests/cgo

go 1.21
