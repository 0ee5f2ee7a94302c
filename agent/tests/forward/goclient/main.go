// A Fluentd Go client (github.com/fluent/fluent-logger-golang, Debian's package) that posts
// N records with RequestAck, retrying through agent restarts. Prints "sent N" every 100
// acknowledged records and "done" at the end.
// Usage: goclient HOST PORT N TAG
package main

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/fluent/fluent-logger-golang/fluent"
)

func main() {
	port, _ := strconv.Atoi(os.Args[2])
	n, _ := strconv.Atoi(os.Args[3])
	tag := os.Args[4]
	logger, err := fluent.New(fluent.Config{
		FluentHost:         os.Args[1],
		FluentPort:         port,
		RequestAck:         true,
		SubSecondPrecision: true,
		MaxRetry:           40,
		RetryWait:          50,
		MaxRetryWait:       500,
		Timeout:            10 * time.Second,
		WriteTimeout:       10 * time.Second,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "connect:", err)
		os.Exit(1)
	}
	for i := 0; i < n; i++ {
		rec := map[string]string{"log": fmt.Sprintf("go-%05d", i), "stream": "stdout"}
		if err := logger.PostWithTime(tag, time.Now(), rec); err != nil {
			fmt.Fprintln(os.Stderr, "post:", err)
			os.Exit(1)
		}
		if (i+1)%100 == 0 {
			fmt.Printf("sent %d\n", i+1)
		}
	}
	logger.Close()
	fmt.Println("done")
}
