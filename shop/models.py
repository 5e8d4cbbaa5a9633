"""Imports every model so Base.metadata is complete (Alembic and the schema test use this)."""

from shop.admin.models import AdminRecoveryCode, AdminUser, SigninFailure  # noqa: F401
from shop.cart.models import ShippingRate, ShippingZone  # noqa: F401
from shop.catalog.models import (  # noqa: F401
    Product,
    ProductImage,
    StockAdjustment,  # noqa: F401
    TaxClass,
    TaxClassRate,
    Variant,
)
from shop.db import Base
from shop.downloads.models import DigitalFile, DownloadGrant  # noqa: F401
from shop.jobs.models import WorkerHeartbeat  # noqa: F401
from shop.legal.models import LegalPage  # noqa: F401
from shop.mail.models import OutboxMessage  # noqa: F401
from shop.orders.models import (  # noqa: F401
    Order,
    OrderContact,
    OrderEvent,
    OrderLine,
    OrderNumberCounter,
    PaymentRecord,
    Shipment,  # noqa: F401
)
from shop.payments.bitcoin.models import (  # noqa: F401
    BitcoinBlock,
    BitcoinIndexCounter,
    BitcoinInvoice,
    BitcoinInvoiceEvent,
    BitcoinPayment,
    BitcoinWatcherStatus,
)
from shop.payments.bitcoin.rate_models import RateQuote  # noqa: F401
from shop.payments.lightning.models import LightningInvoice, LightningStreamState  # noqa: F401
from shop.payments.stripe.models import CardPayment, CardRefund, StripeEventRecord  # noqa: F401
from shop.privacy.models import (  # noqa: F401
    LedgerDay,
    LedgerEntry,
    LedgerLine,
    LedgerRate,
    PrivacyJobRun,
)
from shop.refunds.models import RefundAddress  # noqa: F401

metadata = Base.metadata
