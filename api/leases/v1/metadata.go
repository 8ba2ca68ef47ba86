package leases

// MetadataKey is the ttrpc request metadata key that names the lease a
// call's new resources are added to (ctr's --lease).
const MetadataKey = "berth-lease"
