"""Persistence: peewee-async models and their query helpers. ``db`` is initialised by ``init_db``."""
from models.db import db, init_db
from models.payments import VipOrder, VipPlan
from models.social import Match, Message, Swipe, SwipePair
from models.safety import Ban, BanEvent, Block, Photo, ReportCase, ReportFiling, ReportMessage, StorageDeletion
from models.user import Preferences, SessionRevocation, User
from models.vip import Permission, VipLevel, VipPermission

ALL_MODELS = [User, Preferences, VipLevel, Permission, VipPermission, Swipe, Match, Message, SessionRevocation, VipPlan,
              VipOrder, SwipePair, Block, Ban, BanEvent, ReportCase, ReportFiling, ReportMessage, Photo, StorageDeletion]

__all__ = ["db", "init_db", "User", "Preferences", "SessionRevocation", "VipLevel", "Permission", "VipPermission",
           "Swipe", "SwipePair", "Match", "Message", "VipPlan", "VipOrder", "Block", "Ban", "BanEvent", "ReportCase",
           "ReportFiling", "ReportMessage", "Photo", "StorageDeletion", "ALL_MODELS"]
