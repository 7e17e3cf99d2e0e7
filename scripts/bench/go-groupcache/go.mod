module gcbench

go 1.17

require github.com/golang/groupcache v0.0.0-20210331224755-41bb18bfe9da

require (
	github.com/golang/protobuf v1.5.4 // indirect
	google.golang.org/protobuf v1.33.0 // indirect
)
