"""Domain opt-outs and scopes: urls dropped by their host's domain before any request is made.

An exclude list (e.g. sites that asked not to be crawled for AI training) drops every url whose host is a listed
domain or below one (`example.com` covers `img.example.com`); an include list keeps only those. Files hold one
domain per line; blank lines and `#` comments are ignored.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from pipeline.errors import UserInputError

EXCLUDED_DOMAIN = "excluded_domain"  # the reject reason of a url the rules drop


def read_domains(path: str | Path, option: str) -> frozenset[str]:
    """The domains a file lists, lowercased, without a trailing dot."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise UserInputError(f"{option} {path}: cannot read it ({error.strerror})") from None
    domains = set()
    for number, line in enumerate(lines, start=1):
        domain = line.split("#", 1)[0].strip().lower().rstrip(".")
        if domain and (" " in domain or "/" in domain):
            raise UserInputError(f"{path}, line {number}: {line.strip()!r} is not a domain")
        if domain:
            domains.add(domain)
    return frozenset(domains)


def _covering(host: str, domains: frozenset[str]) -> str | None:
    """The listed domain that is the host or one of its parents, if any."""
    labels = host.split(".")
    for index in range(len(labels)):
        candidate = ".".join(labels[index:])
        if candidate in domains:
            return candidate
    return None


@dataclass(frozen=True)
class DomainRules:
    exclude: frozenset[str] = frozenset()
    include: frozenset[str] | None = None  # None: every domain not excluded
    fingerprint: str = ""  # over the lists' contents: other lists make the download stage start over

    @classmethod
    def from_files(cls, exclude: str | None, include: str | None) -> "DomainRules":
        excluded = read_domains(exclude, "--exclude-domains") if exclude else frozenset()
        included = read_domains(include, "--include-domains") if include else None
        identity = hashlib.sha256(repr((sorted(excluded), None if included is None else sorted(included))).encode())
        return cls(excluded, included, identity.hexdigest() if exclude or include else "")

    def refusal(self, url: str) -> str | None:
        """Why the url is dropped, or None when it may be requested."""
        host = (urlsplit(url).hostname or "").rstrip(".")
        if (listed := _covering(host, self.exclude)) is not None:
            return f"{host} is under excluded domain {listed}"
        if self.include is not None and _covering(host, self.include) is None:
            return f"{host} is not under any included domain"
        return None
