module example.com/certflow/partner-go

go 1.22

require github.com/AzureAD/microsoft-authentication-library-for-go v1.10.1

require (
	github.com/golang-jwt/jwt/v5 v5.2.2 // indirect
	github.com/google/uuid v1.3.0 // indirect
	github.com/kylelemons/godebug v1.1.0 // indirect
	golang.org/x/sync v0.10.0 // indirect
)
