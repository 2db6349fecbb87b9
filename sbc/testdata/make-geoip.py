"""Builds the tiny GeoIP2-Country database the SBC tests use.

    python make-geoip.py OUT.mmdb

Maps a few loopback networks to countries (everything else is unknown):
  127.10.1.0/24 US   127.10.5.0/24 RU (acme's trunk)   127.10.7.0/24 RU
  127.20.1.0/24 GB   127.20.8.0/24 FR
"""
import sys

from mmdb_writer import MMDBWriter
from netaddr import IPSet

NETWORKS = {
    "127.10.1.0/24": "US",
    "127.10.5.0/24": "RU",
    "127.10.7.0/24": "RU",
    "127.20.1.0/24": "GB",
    "127.20.8.0/24": "FR",
}

writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoIP2-Country",
                    languages=["en"], description="tollgate test geo")
for net, cc in NETWORKS.items():
    writer.insert_network(IPSet([net]), {"country": {"iso_code": cc, "names": {"en": cc}}})
writer.to_db_file(sys.argv[1])
