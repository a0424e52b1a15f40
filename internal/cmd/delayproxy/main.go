// Command delayproxy runs internal/delayproxy in front of a registry, for
// measuring by hand what the bench measures: a link with a one-way delay
// and a window per connection.
//
//	delayproxy -target 127.0.0.1:5000 -delay 25ms -addr-file addr
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ctrpush/ctrpush/internal/delayproxy"
)

func main() {
	target := flag.String("target", "", "the registry's host:port (required)")
	delay := flag.Duration("delay", 25*time.Millisecond, "one-way delay (the round trip is twice it)")
	window := flag.Int64("window", 4<<20, "bytes one direction of one connection may have in flight")
	rate := flag.Int64("rate", 0, "bytes per second of the link, both directions together (0: no cap)")
	addrFile := flag.String("addr-file", "", "write the proxy's address to this file")
	flag.Parse()
	if *target == "" {
		fmt.Fprintln(os.Stderr, "delayproxy: -target is required")
		os.Exit(2)
	}
	p, err := delayproxy.Start(*target, delayproxy.Config{Delay: *delay, Window: *window, BytesPerSecond: *rate})
	if err != nil {
		fmt.Fprintln(os.Stderr, "delayproxy:", err)
		os.Exit(1)
	}
	defer p.Close()
	fmt.Println(p.Addr)
	if *addrFile != "" {
		if err := os.WriteFile(*addrFile, []byte(p.Addr), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "delayproxy:", err)
			os.Exit(1)
		}
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	fmt.Fprintf(os.Stderr, "delayproxy: %d connection(s)\n", p.Connections())
}
