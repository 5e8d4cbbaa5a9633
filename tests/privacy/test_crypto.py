from __future__ import annotations

import base64

import pytest

from shop.privacy.crypto import (
    DataKeyError,
    DecryptionError,
    Keyring,
    MasterKey,
    decrypt_field,
    encrypt_field,
    generate_master_key_text,
    load_master_key,
    new_data_key,
    rewrap,
    unwrap_data_key,
    wrap_data_key,
    wrapped_key_id,
)

ORDER = b"order:123"
EMAIL = b"order:123:email"


def _flip(blob: bytes, index: int) -> bytes:
    mutable = bytearray(blob)
    mutable[index] ^= 0x01
    return bytes(mutable)


@pytest.fixture
def master() -> MasterKey:
    return load_master_key(generate_master_key_text())


# --- master key text -------------------------------------------------------------------


def test_generated_key_text_loads_and_has_stable_short_id() -> None:
    text = generate_master_key_text()
    key = load_master_key(text)
    assert len(key.key_id) == 8
    int(key.key_id, 16)
    assert load_master_key(text).key_id == key.key_id
    assert load_master_key(text.rstrip("=")).key_id == key.key_id  # padding optional
    assert load_master_key(f"  {text}\n").key_id == key.key_id


def test_master_key_repr_hides_key() -> None:
    text = generate_master_key_text()
    key = load_master_key(text)
    assert text.rstrip("=") not in repr(key)
    assert key.key_id in repr(key)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        base64.urlsafe_b64encode(b"k" * 16).decode(),  # too short
        base64.urlsafe_b64encode(b"k" * 33).decode(),  # too long
        base64.b64encode(b"\xfb\xff" * 16).decode(),  # standard alphabet ("+", "/")
        "not base64 at all!!" * 3,
        "A" * 43 + "==" + "A",  # padding in the middle
    ],
)
def test_bad_key_text_is_refused_without_echoing_it(text: str) -> None:
    with pytest.raises(DataKeyError) as info:
        load_master_key(text)
    message = str(info.value)
    assert "SHOP_DATA_KEY" in message
    if text.strip():
        assert text.strip() not in message
        assert text.strip()[:12] not in message


def test_key_error_does_not_chain_decoder_exception() -> None:
    with pytest.raises(DataKeyError) as info:
        load_master_key(base64.urlsafe_b64encode(b"k" * 16).decode())
    assert info.value.__cause__ is None


# --- wrapping --------------------------------------------------------------------------


def test_wrap_unwrap_round_trip(master: MasterKey) -> None:
    data_key = new_data_key()
    assert len(data_key) == 32
    wrapped = wrap_data_key(master, data_key, context=ORDER)
    assert data_key not in wrapped
    assert wrapped[0] == 1
    assert wrapped_key_id(wrapped) == master.key_id
    assert unwrap_data_key(Keyring(master), wrapped, context=ORDER) == data_key
    assert unwrap_data_key(master, wrapped, context=ORDER) == data_key


def test_unwrap_accepts_memoryview(master: MasterKey) -> None:
    data_key = new_data_key()
    wrapped = wrap_data_key(master, data_key, context=ORDER)
    assert unwrap_data_key(master, memoryview(wrapped), context=ORDER) == data_key


def test_wrapping_is_randomised(master: MasterKey) -> None:
    data_key = new_data_key()
    assert wrap_data_key(master, data_key, context=ORDER) != wrap_data_key(
        master, data_key, context=ORDER
    )


def test_wrapped_key_cannot_move_to_another_row(master: MasterKey) -> None:
    wrapped = wrap_data_key(master, new_data_key(), context=ORDER)
    with pytest.raises(DecryptionError):
        unwrap_data_key(master, wrapped, context=b"order:124")


def test_wrapped_key_tampering_detected_everywhere(master: MasterKey) -> None:
    wrapped = wrap_data_key(master, new_data_key(), context=ORDER)
    for index in range(len(wrapped)):
        with pytest.raises((DecryptionError, DataKeyError)):
            unwrap_data_key(master, _flip(wrapped, index), context=ORDER)
    with pytest.raises(DecryptionError):
        unwrap_data_key(master, wrapped[:-1], context=ORDER)


def test_wrong_master_key_refused(master: MasterKey) -> None:
    other = load_master_key(generate_master_key_text())
    wrapped = wrap_data_key(master, new_data_key(), context=ORDER)
    with pytest.raises(DataKeyError, match=master.key_id):
        unwrap_data_key(other, wrapped, context=ORDER)


def test_wrong_master_key_with_forged_key_id_refused(master: MasterKey) -> None:
    other = load_master_key(generate_master_key_text())
    wrapped = wrap_data_key(master, new_data_key(), context=ORDER)
    forged = wrapped[:1] + bytes.fromhex(other.key_id) + wrapped[5:]
    with pytest.raises(DecryptionError):
        unwrap_data_key(other, forged, context=ORDER)


def test_bad_inputs_rejected(master: MasterKey) -> None:
    with pytest.raises(DataKeyError):
        wrap_data_key(master, b"short", context=ORDER)
    with pytest.raises(ValueError):
        wrap_data_key(master, new_data_key(), context=b"")
    with pytest.raises(TypeError):
        wrap_data_key(master, new_data_key(), context="order:1")  # type: ignore[arg-type]


# --- rotation --------------------------------------------------------------------------


def test_rotation_with_old_key_then_rewrap_then_old_key_removed() -> None:
    old_text, new_text = generate_master_key_text(), generate_master_key_text()
    old = load_master_key(old_text)
    data_key = new_data_key()
    wrapped = wrap_data_key(old, data_key, context=ORDER)
    field = encrypt_field(data_key, "ana@example.org", context=EMAIL)

    during = Keyring.from_env({"SHOP_DATA_KEY": new_text, "SHOP_DATA_KEY_OLD": f" {old_text} ,"})
    assert during.current.key_id == load_master_key(new_text).key_id
    assert set(during.key_ids) == {old.key_id, during.current.key_id}
    assert unwrap_data_key(during, wrapped, context=ORDER) == data_key

    rewrapped = rewrap(during, wrapped, ORDER)
    assert wrapped_key_id(rewrapped) == during.current.key_id
    assert rewrapped != wrapped

    after = Keyring.from_env({"SHOP_DATA_KEY": new_text})
    recovered = unwrap_data_key(after, rewrapped, context=ORDER)
    assert decrypt_field(recovered, field, context=EMAIL) == "ana@example.org"
    with pytest.raises(DataKeyError):
        unwrap_data_key(after, wrapped, context=ORDER)


def test_rewrap_respects_context(master: MasterKey) -> None:
    wrapped = wrap_data_key(master, new_data_key(), context=ORDER)
    with pytest.raises(DecryptionError):
        rewrap(Keyring(master), wrapped, context=b"order:999")


def test_keyring_from_env_errors_do_not_echo_keys() -> None:
    with pytest.raises(DataKeyError, match="SHOP_DATA_KEY is not set"):
        Keyring.from_env({})
    bad_old = "x" * 10
    with pytest.raises(DataKeyError) as info:
        Keyring.from_env(
            {"SHOP_DATA_KEY": generate_master_key_text(), "SHOP_DATA_KEY_OLD": bad_old}
        )
    assert "SHOP_DATA_KEY_OLD[0]" in str(info.value)
    assert bad_old not in str(info.value)


def test_same_key_as_current_and_old_is_harmless() -> None:
    text = generate_master_key_text()
    ring = Keyring.from_env({"SHOP_DATA_KEY": text, "SHOP_DATA_KEY_OLD": text})
    assert ring.key_ids == (ring.current.key_id,)


# --- fields ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "plaintext",
    ["ana@example.org", "", "Zoë Łukasiewicz, Straße 5, 東京都 🚚", "x" * 10_000, "\x00\n"],
)
def test_field_round_trip(plaintext: str) -> None:
    data_key = new_data_key()
    blob = encrypt_field(data_key, plaintext, context=EMAIL)
    assert isinstance(blob, bytes)
    assert decrypt_field(data_key, blob, context=EMAIL) == plaintext
    assert decrypt_field(data_key, memoryview(blob), context=EMAIL) == plaintext


def test_none_stays_none_and_empty_string_is_not_none() -> None:
    data_key = new_data_key()
    assert encrypt_field(data_key, None, context=EMAIL) is None
    assert decrypt_field(data_key, None, context=EMAIL) is None
    empty = encrypt_field(data_key, "", context=EMAIL)
    assert empty is not None and empty != b""
    assert decrypt_field(data_key, empty, context=EMAIL) == ""


def test_field_ciphertext_randomised_and_hides_plaintext() -> None:
    data_key = new_data_key()
    plaintext = "ana.lovelace@example.org"
    first = encrypt_field(data_key, plaintext, context=EMAIL)
    second = encrypt_field(data_key, plaintext, context=EMAIL)
    assert first is not None and second is not None
    assert first != second
    for blob in (first, second):
        assert plaintext.encode() not in blob
        assert b"ana.lovelace" not in blob
        assert data_key not in blob


def test_field_tampering_detected_everywhere() -> None:
    data_key = new_data_key()
    blob = encrypt_field(data_key, "secret address", context=EMAIL)
    assert blob is not None
    for index in range(len(blob)):
        with pytest.raises(DecryptionError) as info:
            decrypt_field(data_key, _flip(blob, index), context=EMAIL)
        assert "secret" not in str(info.value)
    with pytest.raises(DecryptionError):
        decrypt_field(data_key, blob[:10], context=EMAIL)


def test_field_cannot_move_between_columns_or_rows() -> None:
    data_key = new_data_key()
    blob = encrypt_field(data_key, "ana@example.org", context=EMAIL)
    for context in (b"order:123:name", b"order:124:email"):
        with pytest.raises(DecryptionError):
            decrypt_field(data_key, blob, context=context)


def test_field_wrong_data_key_refused() -> None:
    blob = encrypt_field(new_data_key(), "ana@example.org", context=EMAIL)
    with pytest.raises(DecryptionError):
        decrypt_field(new_data_key(), blob, context=EMAIL)


def test_wrapped_key_blob_is_not_accepted_as_field(master: MasterKey) -> None:
    data_key = new_data_key()
    wrapped = wrap_data_key(master, data_key, context=EMAIL)
    with pytest.raises(DecryptionError):
        decrypt_field(data_key, wrapped, context=EMAIL)


def test_field_rejects_non_text() -> None:
    with pytest.raises(TypeError):
        encrypt_field(new_data_key(), b"bytes", context=EMAIL)  # type: ignore[arg-type]


def test_processes_starting_together_on_a_fresh_instance_get_one_whole_key(tmp_path):
    """Two gunicorn workers booting on a new instance folder both create the generated keys:
    neither may read the other's file half-written (it crashed a worker with 'SHOP_DATA_KEY is
    empty'), and both must end up with the same key."""
    import multiprocessing

    from shop.privacy.keys import instance_data_key

    ctx = multiprocessing.get_context("fork")
    for round_ in range(5):
        instance = tmp_path / f"instance{round_}"
        with ctx.Pool(8) as pool:
            keys = pool.map(instance_data_key, [instance] * 16)
        assert all(keys) and len(set(keys)) == 1
        assert [p.name for p in instance.iterdir()] == ["data_key"]  # no temporary file left
        assert (instance / "data_key").stat().st_mode & 0o777 == 0o600
