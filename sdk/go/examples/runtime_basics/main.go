// Runtime client basics (the guide's "Use a runtime client"): connect, check health, close.
//
//	THALOVANT_IDENTITY=identity.json THALOVANT_PROTOCOL=wss go run ./examples/runtime_basics
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

	client, err := thalovant.NewClientWithOptions(identity, thalovant.ClientOptions{
		Protocol: thalovant.HubProtocol(protocol),
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
