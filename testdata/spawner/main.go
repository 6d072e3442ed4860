// spawner starts other processes the ways Go programs do, doing map work before and after:
//
//	spawner run        os/exec of itself ("child 3") and of /bin/true, then reports both
//	spawner exec       replaces itself (execve) with "spawner child 4"
//	spawner fork       a raw fork(2) without exec: the child fills a pre-sized map and exits 5
//	spawner child N    7 maps of 3 entries each, then exit status N
//	spawner run-go PROG ARGS...     os/exec of another program, map work before and after
//	spawner exec-go PROG ARGS...    replaces itself (syscall.Exec) with another program
//	spawner fork-exec PROG ARGS...  a raw fork(2) whose child execve()s another program
//	spawner later PROG ARGS...      says "ready", waits for SIGUSR1, then does run-go
//	spawner orphan PROG ARGS...     starts another program and exits 6 at once, not waiting
//
// Every line it prints is fixed, so a traced run's output can be compared with an untraced
// one byte for byte.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"syscall"
	"unsafe"
)

var keep []map[int]int

func maps(n int) {
	for i := 0; i < n; i++ {
		m := make(map[int]int)
		for k := 0; k < 3; k++ {
			m[k] = i
		}
		keep = append(keep, m)
	}
}

func status(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func self() string {
	p, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	return p
}

// fork(2) with no exec: only the calling thread exists in the child, so it runs no code
// that needs the runtime's other threads: inserts into a map sized in advance (no growth, no
// allocation) and exit_group. GC is off and the goroutine locked to its thread meanwhile.
func rawFork() {
	debug.SetGCPercent(-1)
	runtime.LockOSThread()
	m := make(map[int]int, 64)
	pid, _, errno := syscall.RawSyscall(syscall.SYS_FORK, 0, 0, 0)
	if errno != 0 {
		fmt.Println("fork failed:", errno)
		os.Exit(1)
	}
	if pid == 0 {
		for k := 0; k < 10; k++ {
			m[k] = k
		}
		code := uintptr(5)
		if len(m) != 10 {
			code = 6
		}
		syscall.RawSyscall(syscall.SYS_EXIT_GROUP, code, 0, 0)
	}
	runtime.UnlockOSThread()
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(int(pid), &ws, 0, nil); err != nil {
		fmt.Println("wait failed:", err)
		os.Exit(1)
	}
	fmt.Printf("fork child_exit=%d child_signal=%d\n", ws.ExitStatus(), int(ws.Signal()))
}

// fork(2) then execve in the child, as a C program or a shell does (no vfork, no CLONE_VM):
// the child starts as a copy of this program and becomes PROG. Everything the child needs is
// built before the fork; the child makes only raw system calls.
func forkExec(argv []string) {
	path, err := syscall.BytePtrFromString(argv[0])
	if err != nil {
		panic(err)
	}
	args, err := syscall.SlicePtrFromStrings(argv)
	if err != nil {
		panic(err)
	}
	env, err := syscall.SlicePtrFromStrings(os.Environ())
	if err != nil {
		panic(err)
	}
	runtime.LockOSThread()
	pid, _, errno := syscall.RawSyscall(syscall.SYS_FORK, 0, 0, 0)
	if errno != 0 {
		fmt.Println("fork failed:", errno)
		os.Exit(1)
	}
	if pid == 0 {
		syscall.RawSyscall(syscall.SYS_EXECVE, uintptr(unsafe.Pointer(path)),
			uintptr(unsafe.Pointer(&args[0])), uintptr(unsafe.Pointer(&env[0])))
		syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 7, 0, 0)
	}
	runtime.UnlockOSThread()
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(int(pid), &ws, 0, nil); err != nil {
		fmt.Println("wait failed:", err)
		os.Exit(1)
	}
	fmt.Printf("fork-exec child_exit=%d\n", ws.ExitStatus())
}

// os/exec of argv with map work before and after.
func runGo(argv []string) {
	maps(5)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	c := status(cmd.Run())
	maps(5)
	fmt.Printf("parent maps=%d child_exit=%d\n", len(keep), c)
}

func main() {
	mode := "run"
	if len(os.Args) > 1 {
		mode = os.Args[1]
	}
	switch mode {
	case "child":
		n, _ := strconv.Atoi(os.Args[2])
		maps(7)
		fmt.Printf("child maps=%d exit=%d\n", len(keep), n)
		os.Exit(n)
	case "run":
		maps(5)
		cmd := exec.Command(self(), "child", "3")
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		c := status(cmd.Run())
		t := status(exec.Command("/bin/true").Run())
		maps(5)
		fmt.Printf("parent maps=%d child_exit=%d true_exit=%d\n", len(keep), c, t)
	case "exec":
		maps(5)
		fmt.Println("exec now")
		err := syscall.Exec(self(), []string{os.Args[0], "child", "4"}, os.Environ())
		fmt.Println("exec failed:", err)
		os.Exit(1)
	case "fork":
		maps(5)
		rawFork()
		maps(5)
		fmt.Printf("parent maps=%d\n", len(keep))
	case "run-go":
		runGo(os.Args[2:])
	case "orphan":
		maps(5)
		cmd := exec.Command(os.Args[2], os.Args[3:]...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Start(); err != nil {
			fmt.Println("start failed:", err)
			os.Exit(1)
		}
		os.Exit(6)
	case "later":
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGUSR1)
		fmt.Println("ready")
		<-ch
		runGo(os.Args[2:])
	case "exec-go":
		maps(5)
		fmt.Println("exec now")
		err := syscall.Exec(os.Args[2], os.Args[2:], os.Environ())
		fmt.Println("exec failed:", err)
		os.Exit(1)
	case "fork-exec":
		maps(5)
		forkExec(os.Args[2:])
		maps(5)
		fmt.Printf("parent maps=%d\n", len(keep))
	default:
		fmt.Fprintln(os.Stderr, "usage: spawner [run|exec|fork|child N|run-go|exec-go|fork-exec|later|orphan PROG ARGS...]")
		os.Exit(2)
	}
}
