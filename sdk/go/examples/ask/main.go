// Ask one question (the guide's "Use ask for one request-response interaction").
//
//	THALOVANT_IDENTITY=identity.json THALOVANT_PROTOCOL=wss go run ./examples/ask
package main

import (
	"context"
	"fmt"
	"log"
	"os"

	thalovant "github.com/thalovant/thalovant-go-sdk"
)

func main() {
	ctx := context.Background()
	path, protocol := os.Getenv("THALOVANT_IDENTITY"), os.Getenv("THALOVANT_PROTOCOL")
	if path == "" {
		path = "_identity.json"
	}
	if protocol == "" {
		protocol = "wss"
	}
	identity, err := thalovant.IdentityFromFile(path)
	if err != nil {
		log.Fatal(err)
	}
	client, err := thalovant.NewClientWithOptions(identity, thalovant.ClientOptions{Protocol: thalovant.HubProtocol(protocol)})
	if err != nil {
		log.Fatal(err)
	}
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
