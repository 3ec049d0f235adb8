package publish_test

import (
	"context"
	"fmt"
	"log"

	"github.com/cometgw/comet/publish"
)

// A backend that tells user 42 their order shipped, and learns whether a
// client had it.
func Example() {
	p, err := publish.Connect(publish.Config{URL: "nats://127.0.0.1:4222"})
	if err != nil {
		log.Fatal(err) // no NATS, or no router answers
	}
	defer p.Close()
	res, err := p.Send(context.Background(), 42, []byte("your order shipped"))
	if err != nil {
		log.Fatal(err) // ErrNoRouter: not sent; ErrTimeout: may or may not have been
	}
	fmt.Printf("delivered to %d connection(s), kept for a resume: %v\n", res.Delivered, res.Kept > 0)
}
