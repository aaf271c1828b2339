// Quick start (the guide's first example): sign in, create a client identity for one hub,
// connect, send one request and print the reply.
//
//	THALOVANT_EMAIL=... THALOVANT_PASSWORD=... THALOVANT_HUB_ID=... go run ./examples/quickstart
//
// The values the guide leaves to the reader come from the environment: the account
// (THALOVANT_EMAIL, THALOVANT_PASSWORD), the hub (THALOVANT_HUB_ID), the client name
// (THALOVANT_CLIENT_NAME, default go-demo-client) and the carrier (THALOVANT_PROTOCOL,
// default wss). The API URL comes from THALOVANT_API_URL; trust a development CA with
// SSL_CERT_FILE.
package main

import (
	"context"
	"fmt"
	"log"
	"os"

	thalovant "github.com/thalovant/thalovant-go-sdk"
	"github.com/thalovant/thalovant-go-sdk/examples/internal/reader"
)

func main() {
	ctx := context.Background()
	api := thalovant.NewDefaultControlPlane("")

	if _, err := api.Login(ctx, os.Getenv("THALOVANT_EMAIL"), os.Getenv("THALOVANT_PASSWORD"), ""); err != nil {
		log.Fatal(err)
	}

	result, err := api.CreateClientIdentityForHubID(ctx, reader.Env("THALOVANT_HUB_ID", "hub-id"), thalovant.BootstrapIdentityOptions{
		Name:               reader.Env("THALOVANT_CLIENT_NAME", "go-demo-client"),
		PreferredProtocols: []thalovant.HubProtocol{thalovant.ProtocolWSS, thalovant.ProtocolHTTPS, thalovant.ProtocolMQTT},
	})
	if err != nil {
		log.Fatal(err)
	}

	client, err := thalovant.NewClientWithOptions(result.Identity, thalovant.ClientOptions{Protocol: reader.Protocol()})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close(ctx)

	reply, err := client.Ask(ctx, "Tell me a short clean joke.", thalovant.RequestOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(reply.Text)
}
