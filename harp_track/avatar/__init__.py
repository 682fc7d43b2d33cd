"""The personalized hand avatar: an explicit, versioned, exportable asset (see `Avatar`)."""

from .asset import AVATAR_VERSION, Avatar, AvatarError

__all__ = ["AVATAR_VERSION", "Avatar", "AvatarError"]
