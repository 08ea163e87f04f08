"""image sets, their members and per-direction exemplars; stimuli gain a sign (max or min)

Existing stimuli are renders of +v, so they become sign 'max' and stay unique per
(direction, sign, replicate).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 10:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0003'
down_revision: Union[str, Sequence[str], None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('image_sets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('source', sa.String(length=1000), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('count >= 0', name=op.f('ck_image_sets_count')),
    sa.CheckConstraint("status IN ('importing', 'complete')", name=op.f('ck_image_sets_status')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_image_sets')),
    sa.UniqueConstraint('name', name=op.f('uq_image_sets_name'))
    )
    op.create_table('image_set_members',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('set_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('source', sa.String(length=1000), nullable=False),
    sa.CheckConstraint('position >= 0', name=op.f('ck_image_set_members_position')),
    sa.ForeignKeyConstraint(['set_id'], ['image_sets.id'], name=op.f('fk_image_set_members_set_id_image_sets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_image_set_members')),
    sa.UniqueConstraint('set_id', 'position', name=op.f('uq_image_set_members_set_id_position')),
    sa.UniqueConstraint('set_id', 'sha256', name=op.f('uq_image_set_members_set_id_sha256'))
    )
    op.create_table('exemplars',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('direction_id', sa.Integer(), nullable=False),
    sa.Column('member_id', sa.Integer(), nullable=False),
    sa.Column('image_sha256', sa.String(length=64), nullable=False),
    sa.Column('sign', sa.String(length=3), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=False),
    sa.Column('activation', sa.Float(), nullable=False),
    sa.Column('role', sa.String(length=10), nullable=False),
    sa.CheckConstraint("sign IN ('max', 'min')", name=op.f('ck_exemplars_sign')),
    sa.CheckConstraint("role IN ('reference', 'query')", name=op.f('ck_exemplars_role')),
    sa.CheckConstraint('rank >= 0', name=op.f('ck_exemplars_rank')),
    sa.ForeignKeyConstraint(['direction_id'], ['directions.id'], name=op.f('fk_exemplars_direction_id_directions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['member_id'], ['image_set_members.id'], name=op.f('fk_exemplars_member_id_image_set_members')),
    sa.ForeignKeyConstraint(['image_sha256'], ['images.sha256'], name=op.f('fk_exemplars_image_sha256_images')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_exemplars')),
    sa.UniqueConstraint('direction_id', 'sign', 'rank', name=op.f('uq_exemplars_direction_id_sign_rank'))
    )
    with op.batch_alter_table('exemplars', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_exemplars_member_id'), ['member_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_exemplars_image_sha256'), ['image_sha256'], unique=False)

    with op.batch_alter_table('stimuli', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sign', sa.String(length=3), server_default='max', nullable=False))
        batch_op.drop_constraint('uq_stimuli_direction_id_replicate', type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_stimuli_direction_id_sign_replicate'), ['direction_id', 'sign', 'replicate'])
        batch_op.create_check_constraint(op.f('ck_stimuli_sign'), "sign IN ('max', 'min')")


def downgrade() -> None:
    """Downgrade schema (refused by the database while min renders exist)."""
    with op.batch_alter_table('stimuli', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_stimuli_sign'), type_='check')
        batch_op.drop_constraint(batch_op.f('uq_stimuli_direction_id_sign_replicate'), type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_stimuli_direction_id_replicate'), ['direction_id', 'replicate'])
        batch_op.drop_column('sign')

    with op.batch_alter_table('exemplars', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_exemplars_image_sha256'))
        batch_op.drop_index(batch_op.f('ix_exemplars_member_id'))

    op.drop_table('exemplars')
    op.drop_table('image_set_members')
    op.drop_table('image_sets')
