// Create a client identity (the guide's "Create identity" recipe) and show it without secrets.
//
//	THALOVANT_EMAIL=... THALOVANT_PASSWORD=... THALOVANT_HUB_ID=... go run ./examples/create_identity
//
// THALOVANT_CLIENT_NAME overrides the guide's client name (checkout-kiosk).
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
	name := os.Getenv("THALOVANT_CLIENT_NAME")
	if name == "" {
		name = "checkout-kiosk"
	}

	result, err := api.CreateClientIdentityForHubID(ctx, os.Getenv("THALOVANT_HUB_ID"), thalovant.BootstrapIdentityOptions{
		Name:               reader.Env("THALOVANT_CLIENT_NAME", "checkout-kiosk"),
		PreferredProtocols: []thalovant.HubProtocol{thalovant.ProtocolWSS, thalovant.ProtocolHTTPS},
	})
	if err != nil {
		log.Fatal(err)
	}

	identity := result.Identity
	fmt.Println(identity)
}
