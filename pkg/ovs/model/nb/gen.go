// Package nb holds the libovsdb models of the OVN_Northbound database, generated from
// ovn-nb.ovsschema as shipped by Debian's ovn-central 23.03 (copied here so the
// generation is reproducible). Do not edit the generated files; run 'make generate'.
package nb

//go:generate go tool modelgen -p nb -o . ovn-nb.ovsschema
