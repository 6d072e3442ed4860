module gomaptrace.test/gotest

go 1.19
