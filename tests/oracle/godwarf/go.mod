module gomaptrace/oracle/godwarf

go 1.19
