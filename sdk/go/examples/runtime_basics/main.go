// Runtime client basics (the guide's "Use a runtime client"): connect, check health, close.
//
//	THALOVANT_IDENTITY=identity.json THALOVANT_PROTOCOL=wss go run ./examples/runtime_basics
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
	identity := reader.Identity()

	client, err := thalovant.NewClientWithOptions(identity, thalovant.ClientOptions{
		Protocol: reader.Protocol(),
	})
	if err != nil {
		log.Fatal(err)
	}

	if err := client.Connect(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println(client.Healthcheck())
	client.Close(ctx)
}
