"""Fleet identity (not built yet): fleet CA, per-kiosk X.509 identities from CSRs made on the
kiosk, broker TLS and ACL configuration, kiosk bundles, rotation and revocation.

Until then kiosks connect with ``mqtt://`` (or ``mqtts://`` with files given in the kiosk
configuration) and upload photos with a kiosk API key.
"""
