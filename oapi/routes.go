package oapi

// routes is the table of served operations and how each authenticates.
// The public calls are those the API specification declares without
// security; the access-key calls also accept login/password.
func (s *Server) routes() map[string]call {
	v := s.svc
	m := map[string]call{
		// Public region facts.
		"ReadRegions":       op(authNone, v.ReadRegions),
		"ReadVmTypes":       op(authNone, v.ReadVmTypes),
		"ReadProductTypes":  op(authNone, v.ReadProductTypes),
		"ReadPublicCatalog": op(authNone, v.ReadPublicCatalog),
		"ReadSubregions":    op(authKey, v.ReadSubregions),

		// Accounts and credentials.
		"ReadAccounts":        op(authKey, v.ReadAccounts),
		"CheckAuthentication": op(authKey, v.CheckAuthentication),
		"CreateAccessKey":     op(authKeyBasic, v.CreateAccessKey),
		"ReadAccessKeys":      op(authKeyBasic, v.ReadAccessKeys),
		"UpdateAccessKey":     op(authKeyBasic, v.UpdateAccessKey),
		"DeleteAccessKey":     op(authKeyBasic, v.DeleteAccessKey),

		// Volumes.
		"CreateVolume": op(authKey, v.CreateVolume),
		"ReadVolumes":  op(authKey, v.ReadVolumes),
		"UpdateVolume": op(authKey, v.UpdateVolume),
		"DeleteVolume": op(authKey, v.DeleteVolume),

		// Snapshots.
		"CreateSnapshot": op(authKey, v.CreateSnapshot),
		"ReadSnapshots":  op(authKey, v.ReadSnapshots),
		"UpdateSnapshot": op(authKey, v.UpdateSnapshot),
		"DeleteSnapshot": op(authKey, v.DeleteSnapshot),

		// Images.
		"CreateImage": op(authKey, v.CreateImage),
		"ReadImages":  op(authKey, v.ReadImages),
		"UpdateImage": op(authKey, v.UpdateImage),
		"DeleteImage": op(authKey, v.DeleteImage),
		// omi extension: the hygiene inspection of an OMI.
		"ReadImageInspection": op(authKey, v.ReadImageInspection),

		// VMs.
		"CreateVms":    op(authKey, v.CreateVms),
		"ReadVms":      op(authKey, v.ReadVms),
		"ReadVmsState": op(authKey, v.ReadVmsState),
		"StartVms":     op(authKey, v.StartVms),
		"StopVms":      op(authKey, v.StopVms),
		"RebootVms":    op(authKey, v.RebootVms),
		"DeleteVms":    op(authKey, v.DeleteVms),
		"UpdateVm":     op(authKey, v.UpdateVm),
		"LinkVolume":   op(authKey, v.LinkVolume),
		"UnlinkVolume": op(authKey, v.UnlinkVolume),

		// Exports.
		"CreateImageExportTask":    op(authKey, v.CreateImageExportTask),
		"ReadImageExportTasks":     op(authKey, v.ReadImageExportTasks),
		"CreateSnapshotExportTask": op(authKey, v.CreateSnapshotExportTask),
		"ReadSnapshotExportTasks":  op(authKey, v.ReadSnapshotExportTasks),
		"DeleteExportTask":         op(authKey, v.DeleteExportTask),

		// Tags.
		"CreateTags": op(authKey, v.CreateTags),
		"DeleteTags": op(authKey, v.DeleteTags),
		"ReadTags":   op(authKey, v.ReadTags),
	}
	// Keypairs, security groups, nets, public IPs, consoles.
	for name, c := range moreRoutes(v) {
		m[name] = c
	}
	// Load balancers (routes_lbu.go).
	for name, c := range lbuRoutes(v) {
		m[name] = c
	}
	// Virtual gateways (routes_gateways.go).
	for name, c := range vgwRoutes(v) {
		m[name] = c
	}
	// Net access points (routes_gateways.go).
	for name, c := range napRoutes(v) {
		m[name] = c
	}
	return m
}
