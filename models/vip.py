"""VIP levels, permissions and which level grants which permission."""
from __future__ import annotations

import peewee

from models.base import BaseModel


class VipLevel(BaseModel):
    level = peewee.SmallIntegerField(primary_key=True)
    name = peewee.CharField(max_length=32)
    price = peewee.DecimalField(max_digits=8, decimal_places=2)

    class Meta:
        table_name = "vip_level"


class Permission(BaseModel):
    id = peewee.AutoField()
    name = peewee.CharField(max_length=32, unique=True)
    description = peewee.CharField(max_length=128)

    class Meta:
        table_name = "permission"


class VipPermission(BaseModel):
    id = peewee.AutoField()
    level = peewee.ForeignKeyField(VipLevel, column_name="level", on_delete="CASCADE")
    permission = peewee.ForeignKeyField(Permission, on_delete="CASCADE")

    class Meta:
        table_name = "vip_permission"
        indexes = ((("level", "permission"), True),)
