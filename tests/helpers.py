"""Small builders shared by tests: a seller legal entity, a client with its legal entity."""

from __future__ import annotations


def owner_le(cli, name: str = "Hub SL") -> dict:
    return cli.json(
        "tenant",
        "legal-entity",
        "add",
        name,
        "--company",
        "1",
        "--legal-name",
        f"{name} S.L.",
        "--country",
        "ES",
        "--legal-id",
        "B00000001",
    )


def client(cli, name: str = "Client A", *, parent: str | None = None, country: str = "FR") -> dict:
    args = ["tenant", "create", name]
    if parent:
        args += ["--parent", parent]
    row = cli.json(*args)
    cli.json(
        "tenant",
        "legal-entity",
        "add",
        f"{name} LE",
        "--company",
        str(row["id"]),
        "--legal-name",
        f"{name} Legal",
        "--country",
        country,
    )
    return row


def reseller(cli, name: str = "Reseller", *, creator: bool = False, parent: str | None = None) -> dict:
    args = ["tenant", "create", name, "--type", "reseller"]
    if creator:
        args.append("--creator-of-resellers")
    if parent:
        args += ["--parent", parent]
    row = cli.json(*args)
    cli.json(
        "tenant",
        "legal-entity",
        "add",
        f"{name} LE",
        "--company",
        str(row["id"]),
        "--legal-name",
        f"{name} Ltd",
        "--country",
        "GB",
        "--legal-id",
        "R-1",
    )
    return row
