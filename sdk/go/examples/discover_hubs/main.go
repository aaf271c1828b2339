// Discover hubs (the guide's control-plane recipes): sign in, list public hubs, read one by
// its reference, list the hubs the workspace sees, read one by id.
//
//	THALOVANT_EMAIL=... THALOVANT_PASSWORD=... THALOVANT_HUB_ID=... go run ./examples/discover_hubs
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
	api := thalovant.NewDefaultControlPlane("")

	_, err := api.Login(ctx, os.Getenv("THALOVANT_EMAIL"), os.Getenv("THALOVANT_PASSWORD"), "")
	if err != nil {
		log.Fatal(err)
	}

	page, err := api.ListPublicHubs(ctx, 12, "")
	if err != nil {
		log.Fatal(err)
	}
	for _, hub := range page.Data {
		fmt.Println(hub.ID, hub.Slug, hub.Title)
	}

	hub, err := api.GetPublicHub(ctx, "joke-garden")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(hub.Title, hub.PublicRef)

	hubs, err := api.ListHubs(ctx, 25, "", "")
	if err != nil {
		log.Fatal(err)
	}
	for _, hub := range hubs.Data {
		fmt.Println(hub.ID, hub.Title)
	}

	one, err := api.GetHub(ctx, os.Getenv("THALOVANT_HUB_ID"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(one.Title)
}
