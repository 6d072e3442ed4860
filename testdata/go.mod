module gomaptrace.test/programs

go 1.19
