// Diagnostics (the guide's "Use diagnostics when a client cannot connect"): Healthcheck
// connects if needed and reports the link, with the last error when it is not ok.
//
//	THALOVANT_IDENTITY=identity.json THALOVANT_PROTOCOL=wss go run ./examples/doctor
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

	fmt.Println(client.Healthcheck())
}
