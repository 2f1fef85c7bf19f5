"""The released PDF's own signature: a standard PAdES signature (pyHanko) that PDF readers and
Debian's `pdfsig` check, with the signed JSON release embedded as a file.

PDF readers and NSS (`pdfsig`) do not check Ed25519 in CMS, so the PDF is signed with an ECDSA
P-256 key derived from the hub's Ed25519 report key's seed: nothing new to keep or back up, and the
same hub always has the same PDF key. Its self-signed certificate is tied to the Ed25519 key twice:
its subject names the Ed25519 fingerprint (what `pdfsig` and PDF readers show), and an extension
holds the Ed25519 key's signature over the certificate's public key (what `crossline verify`
checks), so no other key can pass for the hub's in a PDF.

Signing is deterministic (RFC 6979 ECDSA, dated by the release, document id from the content): a
release always gives the same PDF, byte for byte, with no clock, network or randomness involved.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from asn1crypto import cms as asn1_cms
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.x509.oid import NameOID
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey
from pyhanko.pdf_utils import embed, generic
from pyhanko.pdf_utils.decode_limits import DecodeLimits, DocumentDecodeBudget, StreamDecodeLimits
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.metadata.model import DocumentMetadata
from pyhanko.pdf_utils.misc import PdfDecodeLimitError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext

from crossline.reports.signing import ReportVerificationError, fingerprint

RELEASE_FILE_NAME = "crossline-report.json"
# An OID of our own without registration (ITU-T X.667: 2.25 followed by a UUID as an integer).
ENDORSEMENT_OID = "2.25.79769784310282393965957484907246130011"
_ENDORSED = b"crossline report PDF key/1\n"  # what the Ed25519 key signs: this prefix + the PDF key's SPKI (DER)
_NOT_BEFORE = datetime(2020, 1, 1, tzinfo=UTC)
_NOT_AFTER = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
_VALIDATION_MOMENT = datetime(2030, 1, 1, tzinfo=UTC)
# pyHanko logs what it finds odd in a hostile file as warnings; the reader gets our reason instead,
# and `crossline verify` (no logging set up) would print them to her.
logging.getLogger("pyhanko").setLevel(logging.ERROR)
_MiB = 2**20
# A hub's PDF decodes to well under 1 MiB in all (its largest stream, a font subset, to a few hundred
# KiB). pyHanko's defaults allow 256 MiB a stream: a 68 KB file whose xref stream of zeros declares
# millions of entries then costs a minute of CPU and GBs of memory. Far less is allowed here.
DECODE_LIMITS = DecodeLimits(per_stream=StreamDecodeLimits(max_output_size=2 * _MiB),
                             document_budget=DocumentDecodeBudget(base_allowance=8 * _MiB, max_ratio=4))


def pdf_key(report_key: SigningKey) -> ec.EllipticCurvePrivateKey:
    """The P-256 key derived from the Ed25519 key's seed (HKDF: the seed cannot be recovered from it)."""
    okm = HKDF(hashes.SHA256(), 48, salt=None, info=b"crossline report PDF key P-256").derive(report_key.encode())
    order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    return ec.derive_private_key(int.from_bytes(okm, "big") % (order - 1) + 1, ec.SECP256R1())


def _spki(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def certificate(report_key: SigningKey) -> x509.Certificate:
    """The PDF key's self-signed certificate (deterministic: fixed dates, RFC 6979 signature)."""
    key = pdf_key(report_key)
    spki = _spki(key.public_key())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Crossline hub reports"),
                      x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME,
                                         f"Ed25519 {fingerprint(bytes(report_key.verify_key))}")])
    endorsement = report_key.sign(_ENDORSED + spki).signature
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
               .serial_number(int.from_bytes(hashlib.sha256(spki).digest()[:16], "big") >> 1 or 1)
               .not_valid_before(_NOT_BEFORE).not_valid_after(_NOT_AFTER)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                            crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier(ENDORSEMENT_OID), endorsement),
                              critical=False))
    return builder.sign(key, hashes.SHA256(), ecdsa_deterministic=True)


class _DeterministicSigner(signers.SimpleSigner):
    """pyHanko's signer with RFC 6979 ECDSA: the same input gives the same signature."""

    def sign_raw(self, data: bytes, digest_algorithm: str, dry_run=False) -> bytes:
        private = serialization.load_der_private_key(self.signing_key.dump(), password=None)
        return private.sign(data, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))


class _DatedMetadata(DocumentMetadata):
    """Document metadata whose modification date, once set, is never replaced by "now"."""

    def __setattr__(self, name, value):
        if not (name == "last_modified" and value == "now" and hasattr(self, name)):
            super().__setattr__(name, value)


class _DatedSigner(signers.PdfSigner):
    """Dates the signature by the release instead of the clock."""

    def __init__(self, *args, signed_at: datetime, **kwargs):
        super().__init__(*args, **kwargs)
        self._signed_at = signed_at

    def init_signing_session(self, pdf_out, existing_fields_only=False):
        session = super().init_signing_session(pdf_out, existing_fields_only)
        session.system_time = self._signed_at
        return session


def _run(make_coroutine):
    """pyHanko's work is asynchronous; run it to the end here, also when called from the web app's loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make_coroutine())
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(make_coroutine())).result()


def certificate_fingerprint(report_key: SigningKey) -> str:
    """The SHA-256 of the PDF key's certificate, as PDF readers and `openssl x509 -fingerprint -sha256`
    show it (grouped like the hub key's): what a reader who checks a PDF without `crossline verify`
    compares, since anyone can write a certificate whose name copies the hub key's fingerprint."""
    return fingerprint(certificate(report_key).public_bytes(serialization.Encoding.DER))


def sign_pdf(pdf: bytes, release: bytes, report_key: SigningKey, released_at: datetime) -> bytes:
    """The PDF with the signed JSON release embedded, PAdES-signed by the hub's PDF key."""
    return sign_pdf_with(pdf, release, pdf_key(report_key), certificate(report_key), released_at)


def sign_pdf_with(pdf: bytes, release: bytes, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate,
                  released_at: datetime) -> bytes:
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    # pyHanko gives the new revision a random id; derive it from the content instead.
    first_id = writer._document_id[0]  # noqa: SLF001 - no public way to set it
    writer._document_id = generic.ArrayObject(  # noqa: SLF001
        [first_id, generic.ByteStringObject(hashlib.sha256(pdf + release).digest()[:16])])
    # pyHanko dates the document's metadata by the clock when it writes; keep the release's date.
    writer.document_meta.__class__ = _DatedMetadata
    writer.document_meta.last_modified = released_at
    embed.embed_file(writer, embed.FileSpec(
        file_spec_string=RELEASE_FILE_NAME, file_name=RELEASE_FILE_NAME,
        embedded_data=embed.EmbeddedFileObject.from_file_data(
            writer, release, mime_type="application/json",
            params=embed.EmbeddedFileParams(creation_date=released_at, modification_date=released_at)),
        description="The signed report (check it with: crossline verify)"))
    signer = _DeterministicSigner(
        signing_cert=asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER)),
        signing_key=asn1_keys.PrivateKeyInfo.load(key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())),
        cert_registry=None)
    # A certification signature that allows no changes (DocMDP): PDF readers then treat anything added
    # after it, a second signature included, as breaking the document's certification.
    meta = signers.PdfSignatureMetadata(field_name="CrosslineHubSignature", md_algorithm="sha256",
                                        subfilter=fields.SigSeedSubFilter.PADES, certify=True,
                                        docmdp_permissions=fields.MDPPerm.NO_CHANGES,
                                        reason="Released report of a Crossline hub", name="Crossline hub")
    return _run(lambda: _DatedSigner(meta, signer, signed_at=released_at).async_sign_pdf(writer)).getvalue()


def verified_release(data: bytes) -> tuple[bytes, bytes, bytes, str]:
    """Once the PDF's own signature is checked: the signed JSON release it holds, the public key
    (SPKI, DER) that signed the PDF, its certificate's endorsement by an Ed25519 key (for
    `check_endorsement`) and the certificate's SHA-256 fingerprint. Raises ReportVerificationError."""
    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False, decode_limits=DECODE_LIMITS)
        signatures = reader.embedded_signatures
    except Exception as error:  # noqa: BLE001 - a PDF that cannot be read is not valid, whatever the reason
        raise _refused(error, "the PDF cannot be read: it is damaged or not a PDF") from None
    if len(signatures) != 1:
        raise ReportVerificationError(f"the PDF carries {len(signatures)} signatures: "
                                      "a hub's report carries exactly one")
    signature = signatures[0]
    try:
        cert = signature.signer_cert
        # Trust is the Ed25519 fingerprint's (the caller's decision), not this certificate's: it is
        # only its own root here, checked at a fixed moment inside its validity (no clock, no network).
        status = _run(lambda: async_validate_pdf_signature(
            signature, ValidationContext(trust_roots=[cert], allow_fetching=False, moment=_VALIDATION_MOMENT),
            skip_diff=True))  # what was added after signing is never allowed: no need to judge it
    except Exception as error:  # noqa: BLE001 - a malformed signature is a failed one
        raise _refused(error, "the PDF's signature is malformed") from None
    if not (status.intact and status.valid):
        raise ReportVerificationError("the PDF was changed after it was signed: its signature does not match")
    if status.coverage is not SignatureCoverageLevel.ENTIRE_FILE:
        raise ReportVerificationError("something was added to the PDF after it was signed "
                                      "(its signature does not cover the whole file)")
    if not _written_as_signed(data, signature.sig_object):
        raise ReportVerificationError("the PDF's signature field was changed after signing")
    endorsement = [e for e in cert["tbs_certificate"]["extensions"] or () if e["extn_id"].dotted == ENDORSEMENT_OID]
    if len(endorsement) != 1:
        raise ReportVerificationError("the PDF is signed by a certificate that is not a Crossline hub's report key")
    return (_embedded_release(reader), cert.public_key.dump(), endorsement[0]["extn_value"].contents,
            fingerprint(cert.dump()))


def _refused(error: Exception, reason: str) -> ReportVerificationError:
    if isinstance(error, PdfDecodeLimitError):
        return ReportVerificationError("the PDF holds compressed data that unpacks to far more than any report "
                                       "(a file made to exhaust the checker's memory)")
    return ReportVerificationError(reason)


def _written_as_signed(data: bytes, sig_object) -> bool:
    """The one part of the file the signature cannot cover, its own value, must be exactly as
    pyHanko writes it: the CMS in DER, in upper-case hex, then zeros. Otherwise bytes there (padding,
    a length, the case of a digit) could change and the file still pass."""
    try:
        start, length, end = (int(x) for x in list(sig_object["/ByteRange"])[:3])
        contents = bytes(sig_object["/Contents"])
        signed = asn1_cms.ContentInfo.load(contents, strict=False)
        der = signed.dump(force=True)
    except Exception:  # noqa: BLE001 - malformed: not as signed
        return False
    return (contents == der + bytes(len(contents) - len(der))
            and data[start + length:end] == b"<" + contents.hex().upper().encode() + b">")


def check_endorsement(report_key: VerifyKey, spki: bytes, endorsement: bytes) -> None:
    """The Ed25519 key that signed the release must have endorsed the key that signed the PDF."""
    try:
        report_key.verify(_ENDORSED + spki, endorsement)
    except (BadSignatureError, ValueError):
        raise ReportVerificationError("the PDF is signed by a key that the report's hub key did not endorse") from None


def _embedded_release(reader: PdfFileReader) -> bytes:
    try:
        names = reader.root["/Names"]["/EmbeddedFiles"]["/Names"]
        files = {str(names[i]): names[i + 1].get_object() for i in range(0, len(names), 2)}
        if set(files) != {RELEASE_FILE_NAME}:
            raise KeyError(RELEASE_FILE_NAME)
        return files[RELEASE_FILE_NAME]["/EF"]["/F"].get_object().data
    except Exception as error:  # noqa: BLE001 - missing or malformed, the answer is the same
        raise _refused(error, f"the PDF does not hold the signed report ({RELEASE_FILE_NAME})") from None
