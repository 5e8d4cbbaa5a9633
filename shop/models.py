"""Imports every model so Base.metadata is complete (Alembic and the schema test use this)."""

from shop.catalog.models import Product, ProductImage, TaxClass, Variant  # noqa: F401
from shop.checkout.models import ShippingRate, ShippingZone  # noqa: F401
from shop.db import Base
from shop.orders.models import (  # noqa: F401
    Order,
    OrderContact,
    OrderEvent,
    OrderLine,
    OrderNumberCounter,
    PaymentRecord,
)

metadata = Base.metadata
