// Events (the guide's "wait for one event" and "event streams" recipes): send a request,
// wait for its first event, then keep reading the stream while three more requests are
// answered.
//
//	THALOVANT_IDENTITY=identity.json THALOVANT_PROTOCOL=wss go run ./examples/events
//
// Events() starts with the events that arrived since the last request, so sending first and
// listening second never misses a fast answer. The stream ends once all four requests were
// handled (the guide's loop runs for as long as the client does).
package main

import (
	"context"
	"fmt"
	"log"
	"time"

	thalovant "github.com/thalovant/thalovant-go-sdk"
	"github.com/thalovant/thalovant-go-sdk/examples/internal/reader"
)

func main() {
	ctx := context.Background()
	client := reader.Client()
	defer client.Close(ctx)

	if err := client.SendUtterance(ctx, "Tell me a joke.", thalovant.RequestOptions{}); err != nil {
		log.Fatal(err)
	}

	events := client.Transport.Events()

	select {
	case event := <-events:
		fmt.Println(event.Name, event.Text())
	case <-time.After(12 * time.Second):
		log.Fatal("timed out waiting for event")
	}

	// the stream: the same channel, now while three more requests are answered
	for _, question := range []string{"Tell me a trivia fact.", "Tell me a joke.", "What can this hub do?"} {
		if err := client.SendUtterance(ctx, question, thalovant.RequestOptions{}); err != nil {
			log.Fatal(err)
		}
	}

	handled := 0
	for event := range events {
		fmt.Println(event.Name, event.Text())
		if event.Name == thalovant.EventUtteranceHandled {
			if handled++; handled == 4 {
				break
			}
		}
	}
}
