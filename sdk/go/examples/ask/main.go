// Ask one question (the guide's "Use ask for one request-response interaction").
//
//	THALOVANT_IDENTITY=identity.json THALOVANT_PROTOCOL=wss go run ./examples/ask
package main

import (
	"context"
	"fmt"
	"log"

	thalovant "github.com/thalovant/thalovant-go-sdk"
	"github.com/thalovant/thalovant-go-sdk/examples/internal/reader"
)

func main() {
	ctx := context.Background()
	client := reader.Client()
	defer client.Close(ctx)

	reply, err := client.Ask(ctx, "What can this hub do?", thalovant.RequestOptions{})
	if err != nil {
		log.Fatal(err)
	}

	fmt.Println(reply.Text)
	for _, item := range reply.DisplayItems(600) {
		fmt.Println(item)
	}
}
