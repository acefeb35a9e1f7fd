// Command demo is a small Go service used to produce realistic pprof
// profiles for Stackyard's tests. It serves net/http/pprof and keeps a
// modest, predictable background workload that exercises every profile
// type (cpu, heap/allocs, goroutine, mutex, block, threadcreate).
//
// The function names below are relied upon by the test-suite; do not
// rename them without updating tests/data/README.md:
//
//	main.cpuHogA (+ main.step, inlined into it), main.cpuHogB,
//	main.hashLoop (+ main.mix, inlined into it), main.fib (recursive),
//	main.checkoutHandler / main.searchHandler (labels handler=/checkout,
//	handler=/search), main.allocBurst, main.startWorkers,
//	main.leakyWorker, main.contendMutex, main.blockOnChan, main.lockThread
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof/* on http.DefaultServeMux
	"os/signal"
	"runtime"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Work sizes per tick. They are fixed iteration counts (not time budgets)
// so that -slow-factor produces a proportional difference in cpuHogB.
const (
	tick        = 10 * time.Millisecond
	hogAIters   = 700_000 // ~0.5-1 ms per call on a typical core
	hogBIters   = 400_000 // ~0.9 ms per unit of -slow-factor
	fibN        = 27      // ~300k recursive calls (~0.7 ms) per tick
	allocPeriod = 50 * time.Millisecond
)

// sink defeats dead-code elimination of the CPU work.
var sink uint64

func consume(v uint64) { atomic.AddUint64(&sink, v) }

// ---------------------------------------------------------------- CPU

// step is a tiny leaf that the compiler inlines into cpuHogA, so samples
// taken inside it produce a location with two lines (step + cpuHogA).
func step(x uint64) uint64 {
	x ^= x << 13
	x ^= x >> 7
	x ^= x << 17
	return x
}

// cpuHogA burns CPU directly in its own body (plus the inlined step).
//
//go:noinline
func cpuHogA(iters int) uint64 {
	x := uint64(88172645463325252)
	var acc uint64
	for i := 0; i < iters; i++ {
		x = step(x)
		acc += x >> 3
	}
	return acc
}

// mix is a small finalizer-style hash; it is inlined into hashLoop.
func mix(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	return x
}

// hashLoop is the helper that gives cpuHogB a deeper stack.
//
//go:noinline
func hashLoop(seed uint64, iters int) uint64 {
	h := seed
	for i := 0; i < iters; i++ {
		h = mix(h + uint64(i))
	}
	return h
}

// cpuHogB does most of its work in hashLoop. Its work is multiplied by
// -slow-factor (and nothing else is), which makes a "slower" instance
// differ from a normal one in exactly this call path.
//
//go:noinline
func cpuHogB(iters int) uint64 {
	var acc uint64
	// Split into chunks so the stack is cpuHogB -> hashLoop -> mix.
	const chunk = 50_000
	for done := 0; done < iters; done += chunk {
		n := chunk
		if iters-done < n {
			n = iters - done
		}
		acc ^= hashLoop(acc+uint64(done), n)
	}
	return acc
}

// fib is deliberately naive and recursive: the same function appears many
// times on one stack, which matters for cumulative (cum) values.
func fib(n int) uint64 {
	if n < 2 {
		return uint64(n)
	}
	return fib(n-1) + fib(n-2)
}

// every runs fn, then sleeps for period, until ctx is done. It sleeps
// rather than waiting on a ticker so that the block profile is not
// dominated by these loops (time.Sleep is not a blocking event there).
func every(ctx context.Context, period time.Duration, fn func()) {
	for ctx.Err() == nil {
		fn()
		time.Sleep(period)
	}
}

// checkoutHandler simulates a request handler labelled handler=/checkout.
func checkoutHandler(ctx context.Context) {
	pprof.Do(ctx, pprof.Labels("handler", "/checkout"), func(context.Context) {
		consume(cpuHogA(hogAIters))
	})
}

// searchHandler simulates a request handler labelled handler=/search.
func searchHandler(ctx context.Context) {
	pprof.Do(ctx, pprof.Labels("handler", "/search"), func(context.Context) {
		consume(fib(fibN))
	})
}

func startCPU(ctx context.Context, wg *sync.WaitGroup, slowFactor int) {
	run := func(fn func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			every(ctx, tick, fn)
		}()
	}
	// Labelled work.
	run(func() { checkoutHandler(ctx) })
	run(func() { searchHandler(ctx) })
	// Unlabelled work.
	run(func() { consume(cpuHogB(hogBIters * slowFactor)) })
	run(func() { consume(cpuHogA(hogAIters / 2)) })
	run(func() { consume(fib(fibN - 1)) })
}

// -------------------------------------------------------------- memory

var (
	retainMu sync.Mutex
	retained [256][]byte // bounded ring of live allocations
	retainAt int
	bigRing  [4][]byte // separate tiny ring for the large objects
	bigAt    int
)

var allocSizes = []struct{ size, count int }{
	{32, 100},
	{256, 50},
	{4 << 10, 10},
	{64 << 10, 4},
	{512 << 10, 1},
}

// allocBurst allocates objects of several sizes and keeps a bounded
// subset alive, so heap (inuse) and allocs profiles both have content.
func allocBurst(round int) {
	retainMu.Lock()
	defer retainMu.Unlock()
	for _, s := range allocSizes {
		for i := 0; i < s.count; i++ {
			b := make([]byte, s.size)
			b[0] = byte(i)
			switch {
			case s.size >= 512<<10:
				bigRing[bigAt] = b
				bigAt = (bigAt + 1) % len(bigRing)
			case (i+round)%4 == 0:
				retained[retainAt] = b
				retainAt = (retainAt + 1) % len(retained)
			}
		}
	}
}

func startAlloc(ctx context.Context, wg *sync.WaitGroup) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		round := 0
		every(ctx, allocPeriod, func() {
			allocBurst(round)
			round++
		})
	}()
}

// ----------------------------------------------------------- goroutines

// leakForever is never closed or sent on: every leakyWorker blocks forever.
var leakForever = make(chan struct{})

var leaked int64

// leakyWorker is the intentional goroutine leak.
func leakyWorker(id int) {
	atomic.AddInt64(&leaked, 1)
	<-leakForever
	_ = id
}

// startWorkers runs until ctx is done, starting rate leakyWorker goroutines
// per second (at most max in total). The go statement is in this function,
// so goroutine dumps say "created by main.startWorkers".
func startWorkers(ctx context.Context, rate, max int) {
	period := time.Second / time.Duration(rate)
	for id := 0; ctx.Err() == nil; {
		if id < max {
			go leakyWorker(id)
			id++
		}
		time.Sleep(period)
	}
}

// --------------------------------------------------------------- mutex

var (
	hotMu      sync.Mutex
	hotCounter uint64
)

// contendMutex repeatedly takes hotMu and holds it briefly. Several of
// these run at once, so waiters accumulate contention that is charged to
// the Unlock in this function (mutex profile) and to Lock (block profile).
func contendMutex(ctx context.Context) {
	for ctx.Err() == nil {
		hotMu.Lock()
		hotCounter++
		time.Sleep(200 * time.Microsecond)
		hotMu.Unlock()
		time.Sleep(time.Millisecond)
	}
}

func startMutex(ctx context.Context, wg *sync.WaitGroup) {
	runtime.SetMutexProfileFraction(1)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			contendMutex(ctx)
		}()
	}
}

// --------------------------------------------------------------- block

// blockOnChan waits on an unbuffered channel fed by a slow producer, so it
// spends most of its time blocked in a channel receive.
func blockOnChan(ctx context.Context, ch <-chan int) {
	for {
		select {
		case <-ctx.Done():
			return
		case v := <-ch:
			consume(uint64(v))
		}
	}
}

func startBlock(ctx context.Context, wg *sync.WaitGroup) {
	runtime.SetBlockProfileRate(1)
	ch := make(chan int)
	wg.Add(3)
	go func() {
		defer wg.Done()
		n := 0
		every(ctx, 2*time.Millisecond, func() {
			select {
			case ch <- n:
				n++
			case <-ctx.Done():
			}
		})
	}()
	for i := 0; i < 2; i++ {
		go func() {
			defer wg.Done()
			blockOnChan(ctx, ch)
		}()
	}
}

// ------------------------------------------------------------- threads

// lockThread pins a goroutine to its own OS thread until ctx is done, which
// forces the runtime to create another thread for everything else.
func lockThread(ctx context.Context, ready chan<- struct{}) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ready <- struct{}{}
	<-ctx.Done()
}

func startThreads(ctx context.Context, wg *sync.WaitGroup, n int) {
	ready := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lockThread(ctx, ready)
		}()
		<-ready
	}
}

// ---------------------------------------------------------------- main

func main() {
	addr := flag.String("addr", "127.0.0.1:6060", "listen address for net/http/pprof")
	cpu := flag.Bool("cpu", true, "run the CPU workload (cpuHogA, cpuHogB/hashLoop, fib)")
	slowFactor := flag.Int("slow-factor", 1, "multiply the work done in cpuHogB only")
	alloc := flag.Bool("alloc", true, "run the allocation workload (allocBurst)")
	leakRate := flag.Int("leak-rate", 0, "leaked goroutines (leakyWorker) started per second")
	leakMax := flag.Int("leak-max", 100000, "stop leaking after this many goroutines")
	mutex := flag.Bool("mutex", true, "enable mutex profiling and contention (contendMutex)")
	block := flag.Bool("block", true, "enable block profiling and channel blocking (blockOnChan)")
	threads := flag.Int("threads", 0, "OS threads to pin with runtime.LockOSThread")
	flag.Parse()
	if *slowFactor < 1 {
		log.Fatalf("-slow-factor must be >= 1, got %d", *slowFactor)
	}
	if *alloc {
		// Sample more densely than the 512 KiB default so that small
		// allocation sizes show up in short captures.
		runtime.MemProfileRate = 64 << 10
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("listen %s: %v", *addr, err)
	}
	fmt.Printf("listening on %s\n", ln.Addr())

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	var wg sync.WaitGroup
	if *cpu {
		startCPU(ctx, &wg, *slowFactor)
	}
	if *alloc {
		startAlloc(ctx, &wg)
	}
	if *leakRate > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			startWorkers(ctx, *leakRate, *leakMax)
		}()
	}
	if *mutex {
		startMutex(ctx, &wg)
	}
	if *block {
		startBlock(ctx, &wg)
	}
	startThreads(ctx, &wg, *threads)

	srv := &http.Server{Handler: http.DefaultServeMux, ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		if !errors.Is(err, http.ErrServerClosed) {
			log.Printf("serve: %v", err)
		}
		stop()
	}

	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx) // in-flight CPU profiles may be cut short
	wg.Wait()
	fmt.Println("shutting down")
}
