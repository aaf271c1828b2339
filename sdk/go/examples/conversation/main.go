// A conversation (the guide's "Use a conversation when related turns should share the same
// session"): the second turn remembers what the first said.
//
//	THALOVANT_IDENTITY=identity.json THALOVANT_PROTOCOL=wss go run ./examples/conversation
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

	convo := client.Conversation(thalovant.ConversationOptions{Lang: "en-us"})

	first, err := convo.Ask(ctx, "Remember that my favorite color is blue.", thalovant.RequestOptions{})
	if err != nil {
		log.Fatal(err)
	}
	second, err := convo.Ask(ctx, "What color did I mention?", thalovant.RequestOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(first.Text, second.Text)
}
