// A conversation (the guide's "Use a conversation when related turns should share the same
// session"): the second turn remembers what the first said.
//
//	THALOVANT_IDENTITY=identity.json THALOVANT_PROTOCOL=wss go run ./examples/conversation
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
