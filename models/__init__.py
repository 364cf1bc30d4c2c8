"""Persistence: peewee-async models and their query helpers. ``db`` is initialised by ``init_db``."""
from models.db import db, init_db
from models.payments import VipOrder, VipPlan
from models.social import Match, Swipe
from models.user import Preferences, User
from models.vip import Permission, VipLevel, VipPermission

ALL_MODELS = [User, Preferences, VipLevel, Permission, VipPermission, Swipe, Match, VipPlan, VipOrder]

__all__ = ["db", "init_db", "User", "Preferences", "VipLevel", "Permission", "VipPermission", "Swipe", "Match",
           "VipPlan", "VipOrder", "ALL_MODELS"]
