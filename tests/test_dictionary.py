import pytest

from cpaas_cli.catalog.dictionary import MccmncError, match_country, mcc_country, network_name, normalise_mccmnc


@pytest.mark.parametrize(
    "text,key", [("ES", "ES"), ("esp", "ES"), ("724", "ES"), ("Spain", "ES"), ("Spian", "ES"), ("Russia", "RU")]
)
def test_country_matching(text, key):
    assert match_country(text) == key


def test_country_tie_goes_to_smallest_key():
    # "Korea" starts both Koreas' names: KP < KR
    assert match_country("Korea") == "KP"


def test_no_country():
    assert match_country("Qqxzv") is None


@pytest.mark.parametrize(
    "text,mcc,mnc",
    [
        ("21401", "214", "01"),
        ("214-1", "214", "01"),
        ("214 001", "214", "001"),
        ("310260", "310", "260"),
        ("214", "214", None),
        ("21401.0", "214", "01"),
    ],
)
def test_mccmnc_normalisation(text, mcc, mnc):
    m = normalise_mccmnc(text)
    assert (m.mcc, m.mnc) == (mcc, mnc)


@pytest.mark.parametrize("text", ["2140", "2140111", "abc", "99901", ""])
def test_mccmnc_refused(text):
    with pytest.raises(MccmncError):
        normalise_mccmnc(text)


def test_dictionary_contents():
    assert mcc_country("214") == "ES"
    assert mcc_country("412") == "AF"
    assert network_name("21401") == "Vodafone Spain"
