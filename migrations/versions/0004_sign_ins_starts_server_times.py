"""researcher sign-ins as rows, the per-address session start count, server-timed answers

Each console sign-in becomes a row that sign-out, a password change or idle time ends
(`researcher_logins`); session starts are counted per study and client address
(`session_starts`); ratings keep the server's own answer time (`server_rt_ms`, empty for
ratings stored before).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 16:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0004'
down_revision: Union[str, Sequence[str], None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('researcher_logins',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_researcher_logins_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_researcher_logins')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_researcher_logins_token_hash'))
    )
    with op.batch_alter_table('researcher_logins', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_researcher_logins_user_id'), ['user_id'], unique=False)

    op.create_table('session_starts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.Integer(), nullable=False),
    sa.Column('address', sa.String(length=100), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['study_id'], ['studies.id'], name=op.f('fk_session_starts_study_id_studies'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_session_starts'))
    )
    with op.batch_alter_table('session_starts', schema=None) as batch_op:
        batch_op.create_index('ix_session_starts_study_address', ['study_id', 'address', 'started_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_session_starts_started_at'), ['started_at'], unique=False)

    with op.batch_alter_table('ratings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('server_rt_ms', sa.Integer(), nullable=True))
        batch_op.create_check_constraint(op.f('ck_ratings_server_rt_ms'),
                                         'server_rt_ms IS NULL OR server_rt_ms >= 0')


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('ratings', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_ratings_server_rt_ms'), type_='check')
        batch_op.drop_column('server_rt_ms')

    with op.batch_alter_table('session_starts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_session_starts_started_at'))
        batch_op.drop_index('ix_session_starts_study_address')

    op.drop_table('session_starts')
    with op.batch_alter_table('researcher_logins', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_researcher_logins_user_id'))

    op.drop_table('researcher_logins')
